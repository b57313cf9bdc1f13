"""The HTTP layer: one client with its retry policy, rate limiter and page ahead."""
