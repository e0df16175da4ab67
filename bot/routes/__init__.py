"""HTTP routes: thin edges that parse, authorise and call a service function."""
