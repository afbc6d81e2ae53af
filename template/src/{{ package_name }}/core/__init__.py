"""Cross-cutting code owned by the template. Team code lives in features/."""
