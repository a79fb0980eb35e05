-- GET /api/definitions: the names a project has used (kind: event | event_property | person_property).
SELECT kind, name
FROM definitions
WHERE project_id = {project_id:UInt64}
GROUP BY kind, name
ORDER BY kind, name
