"""Command-line front end: parse, one facade call, format."""
