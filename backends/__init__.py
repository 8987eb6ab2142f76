"""Target backends: the registry of targets. One module per target; see DESIGN.md."""
