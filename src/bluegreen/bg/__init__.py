"""The blue/green deployment plugin (plugin code ``bg``)."""
