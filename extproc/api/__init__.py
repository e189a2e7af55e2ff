"""The OpenAI request model, its parser, and errors in OpenAI's error format."""
