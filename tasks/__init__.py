"""Built-in benchmark plugins, installed as the `mmhallu_tasks` package."""
