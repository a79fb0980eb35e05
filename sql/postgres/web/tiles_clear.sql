DELETE FROM dashboard_tiles WHERE dashboard_id = $1
