"""Label Studio adapter: local server, SDK client, label configs, converters to and from LS JSON."""
