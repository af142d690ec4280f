"""Journal replay: the apply path, push followers, pull-before-read, start-up recovery."""
