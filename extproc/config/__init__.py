"""Process settings, the operator's YAML schema, and its compiled snapshot."""
