"""The application: settings, composition root, use cases, jobs, web server and CLI."""
