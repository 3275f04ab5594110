print("token-stream: not yet")
