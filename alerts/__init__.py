"""Signal fusion, the warning lifecycle and its persistence, recommendations, delivery."""
