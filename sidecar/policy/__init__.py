"""The decision policy: `schema` (what operators write), `rules` (pure functions from a policy
and upstream's answer to a Decision), `source` (hot reload), `tools` (check, dry-run)."""
