"""Local stand-ins for remote LLM APIs, shared by the rephrase and judge tests."""
