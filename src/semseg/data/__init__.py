"""Channel data: discovery and pairing, label maps, transforms, datasets and loaders."""
