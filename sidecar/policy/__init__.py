"""The decision policy: `schema` (what operators write), `rules` (pure functions from a policy
and upstream's answer to a Decision), `source` (hot reload), and the operator commands
`tools` (`policy check`) and `dryrun` (`policy dry-run`)."""
