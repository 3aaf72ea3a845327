"""Built-in cronman plugins: each module or package is an ordinary plugin."""
