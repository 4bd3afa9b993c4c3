"""The Marketo sandbox: a real HTTP server that behaves like a Marketo instance."""
