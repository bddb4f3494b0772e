"""Library floors: the least a function can cost at start with the project's fixed choices and no code of ours.

Each floor is a functions-framework async function that imports the fixed libraries every shop function of its
store needs (pydantic for its response, prometheus-client for its metrics, the store's driver), holds garbage
collection while it imports as shared.startup does, and answers its first request from the store: a client made,
one read, one pydantic model dumped. `make bench` starts each as it starts our functions, so a function's cold start
divided by its floor's is what our own code adds, and the floor divided by hello is what the fixed choices cost.
"""
