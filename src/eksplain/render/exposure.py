"""Reaching the server from outside the cluster, through the AWS Load Balancer Controller:

    nlb   the Service becomes an internal Network Load Balancer (loadBalancerClass
          service.k8s.aws/nlb, IP targets), health-checked on the engine's health path
    alb   an Ingress (class alb) for an internal Application Load Balancer with IP targets,
          health-checked on the same path, with an idle timeout long enough for a generation

Both are internal: exposing a model to the internet is a decision this tool leaves to the user.
Annotation names follow the controller's v2 documentation
(kubernetes-sigs.github.io/aws-load-balancer-controller/v2.13/guide/service/annotations/ and
.../guide/ingress/annotations/).
"""

from __future__ import annotations

from typing import Any

from eksplain.render.context import PROBE_PERIOD_S, RenderContext

__all__ = ["ALB_IDLE_TIMEOUT_S", "ingress", "nlb_service_fields"]

# A non-streaming request holds its connection for the whole generation; the ALB's 60 s default
# would cut long answers. A policy choice, not a measurement.
ALB_IDLE_TIMEOUT_S = 600
HEALTHY_THRESHOLD = 2
UNHEALTHY_THRESHOLD = 3


def nlb_service_fields(ctx: RenderContext) -> tuple[dict[str, str], dict[str, Any]]:
    """(annotations, spec fields) that make the Service an internal NLB."""
    prefix = "service.beta.kubernetes.io/aws-load-balancer-"
    annotations = {
        f"{prefix}scheme": "internal",
        f"{prefix}nlb-target-type": "ip",
        f"{prefix}healthcheck-protocol": "http",
        f"{prefix}healthcheck-port": "traffic-port",
        f"{prefix}healthcheck-path": str(ctx.engine["health_path"]),
        f"{prefix}healthcheck-interval": str(PROBE_PERIOD_S),
        f"{prefix}healthcheck-healthy-threshold": str(HEALTHY_THRESHOLD),
        f"{prefix}healthcheck-unhealthy-threshold": str(UNHEALTHY_THRESHOLD),
    }
    return annotations, {"type": "LoadBalancer", "loadBalancerClass": "service.k8s.aws/nlb"}


def ingress(ctx: RenderContext) -> dict[str, Any]:
    """An internal ALB in front of the ClusterIP Service."""
    prefix = "alb.ingress.kubernetes.io/"
    annotations = {
        f"{prefix}scheme": "internal",
        f"{prefix}target-type": "ip",
        f"{prefix}listen-ports": '[{"HTTP": 80}]',
        f"{prefix}healthcheck-path": str(ctx.engine["health_path"]),
        f"{prefix}healthcheck-port": "traffic-port",
        f"{prefix}healthcheck-interval-seconds": str(PROBE_PERIOD_S),
        f"{prefix}healthy-threshold-count": str(HEALTHY_THRESHOLD),
        f"{prefix}unhealthy-threshold-count": str(UNHEALTHY_THRESHOLD),
        f"{prefix}success-codes": "200",
        f"{prefix}load-balancer-attributes":
            f"idle_timeout.timeout_seconds={ALB_IDLE_TIMEOUT_S}",
    }
    backend = {"service": {"name": ctx.name, "port": {"name": "http"}}}
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": ctx.name, "namespace": ctx.namespace, "labels": dict(ctx.labels),
                     "annotations": annotations},
        "spec": {"ingressClassName": "alb",
                 "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix",
                                                "backend": backend}]}}]},
    }
