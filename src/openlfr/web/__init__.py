"""The operator and reviewer console: static HTML, CSS and JavaScript served by the API."""
