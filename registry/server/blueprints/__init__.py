"""HTTP views: discovery pages, file distribution, the JSON API, health."""
