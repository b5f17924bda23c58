"""Redis as every store that shares it sees it (replay store, outbox, rate limits): the URL
forms (`url`, pure, what the settings model validates with) and the clients (`client`:
one function from a URL to a redis-py client of the right shape, and writes proved
replicated). Kept apart so that validating settings never imports redis-py."""
