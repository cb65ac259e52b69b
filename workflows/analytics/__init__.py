"""Analytics: the buyer funnel (track_funnel_event); aggregation builds on it."""
