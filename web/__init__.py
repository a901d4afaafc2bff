"""HTTP plumbing shared by every app: the REST API's error shape, throttles and schema hooks,
the Content-Security-Policy and error-shape middleware, and the text-input guard."""
