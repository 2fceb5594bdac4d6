"""SQL expressions over a lead's columns that the lead summary, the lead history and the pages
share, so that "attempted" and "the agent" mean one thing everywhere."""

# A lead counts as attempted when it was dialled at least once: attempts > 0, or, when the
# attempt count is absent, a dial status other than "not dialled".
ATTEMPTED_SQL = "coalesce(attempts > 0, dial_bucket <> 'Not dialled')"
# The agent of a lead's last call: the name, or the id when the name is empty; NULL = none.
AGENT_SQL = "coalesce(nullif(trim(agent_name), ''), nullif(trim(agent_id), ''))"
