-- Team names are unique per nothing: two customers may both be called "Acme", and a sign-up
-- must not learn that another customer has a name. Ids identify teams; operators who address a
-- team by name are refused when the name is ambiguous (see staff::support::find_team).
--
-- teams_name_key_uq is a separate index (not an inline UNIQUE), so dropping it is enough on
-- both databases; a plain index keeps look-ups by name fast.
DROP INDEX teams_name_key_uq;
CREATE INDEX teams_name_key_idx ON teams (name_key);
