"""The pipeline worker (Faust app `signal-pipeline`): route changes, deliver to Marketo."""
