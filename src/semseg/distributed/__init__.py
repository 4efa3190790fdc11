"""What several hosts need whatever the engine: host names resolved with a bounded retry, the peer watch that
fails a host whose peer died, and the stop that every host takes at the same iteration."""
