"""The query API (a stage of its own: `python -m workers query`, or inside the writer with chdb://).

api: the HTTP app (routes, auth, middleware, endpoint limits, `create_app`, `main`); http: what its endpoints
share. sql: the SQL toolkit the insights share. insights: the registry of trends, funnels, retention,
sessions and paths (trends_rollups: trends from the Flink job's rollups), each `parse`, `names`, `answer`.
definitions, events, persons, saved (insights and dashboards), live, static (the web app's files), cache
(the insights' result cache).
"""
