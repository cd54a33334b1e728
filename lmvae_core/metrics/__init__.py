"""Evaluation metrics shared by every notebook, one small module each."""
from .active_units import active_units
from .clustering import cluster_accuracy, contingency, usage_entropy
from .elbo import negative_elbo, reconstruction_error
from .fid import FeatureClassifier, fid, frechet_distance
from .loglik import iwae_log_likelihood, mean_iwae, mixture_log_likelihood
from .task_matrix import TaskMatrix

__all__ = ["active_units", "cluster_accuracy", "contingency", "usage_entropy", "negative_elbo",
           "reconstruction_error", "FeatureClassifier", "fid", "frechet_distance",
           "iwae_log_likelihood", "mean_iwae", "mixture_log_likelihood", "TaskMatrix"]
