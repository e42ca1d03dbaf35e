"""Long work on ``site.<slug>.gpu``: training, inference, evaluation. Tasks stay thin."""
