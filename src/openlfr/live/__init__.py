"""Live facial recognition: video sources, face tracking, best shots, alerts, deployments."""
