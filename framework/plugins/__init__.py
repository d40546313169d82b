"""Plugin protocols, the registry of built-in implementations, and the conformance kit."""
