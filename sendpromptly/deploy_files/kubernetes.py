"""``deploy/k8s/sinks.yaml``: each sink's Deployment and PodDisruptionBudget, all of one shape."""

from __future__ import annotations

import json
import textwrap
from string import Template

from sendpromptly.processes import Process

PREAMBLE = """\
# One Deployment and one PodDisruptionBudget per sink of sendpromptly/processes.py, listed in
# kustomization.yaml. Every sink listens on its own pod's port (SENDPROMPTLY_SINK_METRICS_PORT).
"""

WORKLOADS = Template("""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: $job
  labels:
    app.kubernetes.io/name: $job
    app.kubernetes.io/component: sink
spec:
  # Two for availability. Replicas share the partitions of the consumed topics, so more than
  # SENDPROMPTLY_FLOW_PARTITIONS would sit idle (docs/scaling.md).
  replicas: 2
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      app.kubernetes.io/name: $job
  template:
    metadata:
      labels:
        app.kubernetes.io/name: $job
        app.kubernetes.io/component: sink
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "$port"
        prometheus.io/path: /metrics
    spec:
      serviceAccountName: sendpromptly
      automountServiceAccountToken: false
      # Offsets are committed after each handled batch; a stop loses nothing, it only re-handles
      # the current batch (idempotently) on the next start.
      terminationGracePeriodSeconds: 30
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        fsGroup: 10001
        seccompProfile:
          type: RuntimeDefault
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              app.kubernetes.io/name: $job
      containers:
        - name: sink
          image: sendpromptly
          args: $args
          envFrom:
            - configMapRef:
                name: sendpromptly-config
          ports:
            - name: http
              containerPort: $port
          # The health server starts once the database pool is open (up to 30 s).
          startupProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 2
            failureThreshold: 30
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          # Ready once the consumer has joined its group and every loop of the sink runs.
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          resources:
            requests:
              cpu: 100m
              memory: 128Mi
            limits:
              cpu: 500m
              memory: 256Mi
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
          volumeMounts:
            - name: secrets
              mountPath: /etc/sendpromptly/secrets
              readOnly: true
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: secrets
          secret:
            secretName: sendpromptly-secrets
            defaultMode: 0440
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
---
# Drains take one replica down at a time: the other keeps consuming (after a rebalance).
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: $job
  labels:
    app.kubernetes.io/name: $job
    app.kubernetes.io/component: sink
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: $job
""")


def sink_workloads(processes: tuple[Process, ...]) -> str:
    documents = []
    for process in processes:
        if process.sink is None:
            continue
        name = process.args[1]
        about = textwrap.fill(f'Sink "{name}" (`sendpromptly {" ".join(process.args)}`): {process.sink.does}',
                              width=100, initial_indent="# ", subsequent_indent="# ",
                              break_long_words=False, break_on_hyphens=False)
        documents.append(about + "\n" + WORKLOADS.substitute(job=process.job, port=process.container_port,
                                                             args=json.dumps(list(process.args))))
    return PREAMBLE + "\n" + "---\n".join(documents)
