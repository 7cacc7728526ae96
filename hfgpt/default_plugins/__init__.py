"""Built-in plugins. Each module here is registered by ``hfgpt.plugins`` exactly like a third-party plugin."""
