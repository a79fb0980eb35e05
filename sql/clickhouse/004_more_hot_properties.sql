-- More hot properties as materialized columns (workers/query/sql.py HOT_PROPERTIES maps each property to its
-- column): filters, breakdowns and sessions read these instead of parsing the properties JSON per query.
-- Parts written before this migration compute them on read, so answers are the same either way.
ALTER TABLE events ADD COLUMN IF NOT EXISTS mat_browser String MATERIALIZED JSONExtractString(properties, '$browser');
ALTER TABLE events ADD COLUMN IF NOT EXISTS mat_os String MATERIALIZED JSONExtractString(properties, '$os');
ALTER TABLE events ADD COLUMN IF NOT EXISTS mat_device_type String MATERIALIZED JSONExtractString(properties, '$device_type');
ALTER TABLE events ADD COLUMN IF NOT EXISTS mat_current_url String MATERIALIZED JSONExtractString(properties, '$current_url');
ALTER TABLE events ADD COLUMN IF NOT EXISTS mat_pathname String MATERIALIZED JSONExtractString(properties, '$pathname');
ALTER TABLE events ADD COLUMN IF NOT EXISTS mat_host String MATERIALIZED JSONExtractString(properties, '$host');
ALTER TABLE events ADD COLUMN IF NOT EXISTS mat_referring_domain String MATERIALIZED JSONExtractString(properties, '$referring_domain');
ALTER TABLE events ADD COLUMN IF NOT EXISTS mat_country_code String MATERIALIZED JSONExtractString(properties, '$geoip_country_code');
