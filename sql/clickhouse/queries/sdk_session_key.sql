-- An event's SDK session key as the Flink job reads it ('' when it has none): `$session_id`, or for an
-- Amplitude event a session id above 0 as amp:<device id, else user id, else distinct id>:<session id>.
multiIf(protocol = 'amplitude' AND toInt64OrZero(session_id) > 0,
        concat('amp:', coalesce(nullIf(JSONExtractString(properties, '$device_id'), ''),
                                nullIf(JSONExtractString(properties, '$user_id'), ''), distinct_id),
               ':', session_id),
        protocol != 'amplitude', session_id,
        '')
