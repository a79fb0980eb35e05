-- A failed computation: the previous version stays; the claim is given back.
UPDATE cohorts SET refreshing_since = NULL WHERE id = $1
