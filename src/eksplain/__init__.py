"""eksplain: size, plan and explain AI/ML workloads on Amazon EKS.

The public Python API is the facade in ``eksplain.api``, re-exported here::

    import eksplain
    est = eksplain.estimate(eksplain.EstimateRequest(model="meta-llama/Llama-3.1-8B",
                                                     hardware="h100"))
    est.memory.total_bytes, est.fits
"""

# The `explain` sub-package is imported before the facade's `explain` function is bound to the
# same name, so that a later import of the sub-package cannot shadow the function.
import eksplain.explain as _explain_package  # noqa: F401
from eksplain.api import (
    Estimate,
    EstimateRequest,
    HardwareRow,
    Plan,
    WorkloadSpec,
    estimate,
    explain,
    glossary,
    hardware,
    load_spec,
    models,
    plan,
)
from eksplain.errors import (
    CatalogError,
    EksplainError,
    InfeasibleError,
    InputError,
    RenderError,
)

__version__ = "0.1.0"

__all__ = [
    "CatalogError",
    "EksplainError",
    "Estimate",
    "EstimateRequest",
    "HardwareRow",
    "InfeasibleError",
    "InputError",
    "Plan",
    "RenderError",
    "WorkloadSpec",
    "__version__",
    "estimate",
    "explain",
    "glossary",
    "hardware",
    "load_spec",
    "models",
    "plan",
]
