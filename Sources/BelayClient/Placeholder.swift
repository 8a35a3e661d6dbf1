enum _PlaceholderBelayClient {}
