"""The stand-in's controllers (part of the stand-in API server, server.py; NOT Kubernetes): the
kubelet's side of pods (`kubelet` runs each on Docker) and the Job controller.

The Job controller (`Cluster.reconcile`, every 0.2 s): one pod at a time (parallelism 1,
completions 1), a new pod after a failure while failures <= backoffLimit (after a backoff of
`--backoff` seconds doubling per failure, 10 s like the real controller unless a test says
otherwise), podFailurePolicy `Ignore` on a pod condition (a disrupted pod does not count), Job
`activeDeadlineSeconds`, `ttlSecondsAfterFinished`, conditions `Complete`/`Failed` (+
`SuccessCriteriaMet`/`FailureTarget` first, as since 1.31) with their reasons, pod labels
`batch.kubernetes.io/job-name` and `controller-uid` (and the legacy ones). Deleting a Job with
propagationPolicy Background or Foreground deletes its pods; without one they are orphaned, as
the batch API does.

An evicted pod's container gets SIGTERM and its grace period before SIGKILL (`evict`); a pod
stopped otherwise (deleted, past its deadline, its Job finished) is killed at once.

Not modelled: scheduling and everything `kubelet` lists, the CronJob controller (CronJobs are
only stored), Job parallelism/completions/indexes/suspend, pod failure policy on exit codes,
events.
"""

from __future__ import annotations

import argparse
import copy
import secrets
import threading
import time
from pathlib import Path

from kubelet import CannotStart, Kubelet, NotYet
from objects import JSON, ApiError, Objects, now


class Cluster(Objects):
    """The objects and the controllers that act on them."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__()
        self.ca_file = args.cert
        self.port = 0
        self.backoff = args.backoff
        state = Path(args.state)
        images = dict(i.split("=", 1) for i in args.image)
        pvcs = {n: Path(p) for n, p in (v.split("=", 1) for v in args.pvc)}
        self.kubelet = Kubelet(self, state, images, pvcs)
        self.containers: dict[str, str] = {}  # pod uid -> container id
        self.logs: dict[str, str] = {}  # pod uid -> log of its ended container
        self.next_pod_at: dict[str, float] = {}
        self.clock: dict[str, float] = {}  # "<uid>/start" and "<uid>/end" of pods and Jobs
        self.terminating: set[str] = set()  # uids of evicted pods whose container is stopping

    def _deleted(self, plural: str, ns: str, obj: JSON, propagation: str | None) -> None:
        """A deleted pod's container stops; a Job deleted with propagation takes its pods."""
        if plural == "pods":
            self._stop_pod(obj)
        if plural == "jobs" and propagation in ("Background", "Foreground"):
            for pod in self._pods_of(obj):
                self.delete("pods", ns, pod["metadata"]["name"], None)

    # ---------------------------------------------------------------- controllers

    def _pods_of(self, job: JSON) -> list[JSON]:
        uid = job["metadata"]["uid"]
        return [
            p
            for p in self.listing("pods", job["metadata"]["namespace"], "")
            if (p["metadata"].get("labels") or {}).get("controller-uid") == uid
        ]

    def _stop_pod(self, pod: JSON) -> None:
        cid = self.containers.pop(pod["metadata"]["uid"], None)
        if cid:
            self.kubelet.kill(cid)
            self.logs[pod["metadata"]["uid"]] = self.kubelet.logs(cid)
            self.kubelet.remove(cid)

    def _set_status(self, plural: str, obj: JSON, status: JSON) -> None:
        if status != obj.get("status"):
            obj["status"] = status
            self.store(plural, obj["metadata"]["namespace"], obj, "MODIFIED")

    def _pod_failed(
        self, pod: JSON, reason: str, message: str, code: int = 137, condition: str | None = None
    ) -> None:
        self._stop_pod(pod)
        status = copy.deepcopy(pod["status"])
        status.update(phase="Failed", reason=reason, message=message)
        status["containerStatuses"] = [
            {
                "name": pod["spec"]["containers"][0]["name"],
                "ready": False,
                "restartCount": 0,
                "image": pod["spec"]["containers"][0]["image"],
                "imageID": "",
                "state": {"terminated": {"exitCode": code, "reason": "Error", "finishedAt": now()}},
            }
        ]
        if condition:
            status["conditions"] = [
                {"type": condition, "status": "True", "reason": reason, "lastTransitionTime": now()}
            ]
        self._set_status("pods", pod, status)

    def reconcile(self) -> None:
        for (plural, _, _), obj in list(self.objects.items()):
            if (
                plural == "pods"
                and self.objects.get(
                    ("pods", obj["metadata"]["namespace"], obj["metadata"]["name"])
                )
                is obj
            ):
                self._kubelet_sync(obj)
        for (plural, _, _), obj in list(self.objects.items()):
            if plural == "jobs":
                self._job_sync(obj)

    def _kubelet_sync(self, pod: JSON) -> None:
        status = pod["status"]
        uid = pod["metadata"]["uid"]
        container = pod["spec"]["containers"][0]
        if status["phase"] == "Pending":
            try:
                cid = self.kubelet.start(pod)
            except NotYet:
                return
            except CannotStart as exc:
                waiting = {"waiting": {"reason": exc.reason, "message": exc.message}}
                self._set_status(
                    "pods",
                    pod,
                    {
                        **status,
                        "containerStatuses": [
                            {
                                "name": container["name"],
                                "ready": False,
                                "restartCount": 0,
                                "image": container["image"],
                                "imageID": "",
                                "state": waiting,
                            }
                        ],
                    },
                )
                return
            self.containers[uid] = cid
            self.clock[uid + "/start"] = time.time()
            self._set_status(
                "pods",
                pod,
                {
                    "phase": "Running",
                    "startTime": now(),
                    "containerStatuses": [
                        {
                            "name": container["name"],
                            "ready": True,
                            "restartCount": 0,
                            "started": True,
                            "image": container["image"],
                            "imageID": "",
                            "state": {"running": {"startedAt": now()}},
                        }
                    ],
                },
            )
            return
        if status["phase"] != "Running" or uid in self.terminating:
            return
        deadline = pod["spec"].get("activeDeadlineSeconds")
        if deadline is not None and time.time() - self.clock[uid + "/start"] > deadline:
            self._pod_failed(
                pod,
                "DeadlineExceeded",
                "Pod was active on the node longer than the specified deadline",
            )
            return
        cid = self.containers.get(uid)
        ended = self.kubelet.state_of(cid) if cid else {"exitCode": 137, "reason": "Error"}
        if ended is None:
            return
        self._stop_pod(pod)
        code = ended["exitCode"]
        self._set_status(
            "pods",
            pod,
            {
                **{k: v for k, v in status.items()},
                "phase": "Succeeded" if code == 0 else "Failed",
                "containerStatuses": [
                    {
                        "name": container["name"],
                        "ready": False,
                        "restartCount": 0,
                        "started": False,
                        "image": container["image"],
                        "imageID": "",
                        "state": {"terminated": {**ended, "finishedAt": now()}},
                    }
                ],
            },
        )

    def _job_sync(self, job: JSON) -> None:
        spec, status = job["spec"], copy.deepcopy(job.get("status") or {})
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        uid = job["metadata"]["uid"]
        conditions = status.get("conditions") or []
        if any(c["type"] in ("Complete", "Failed") for c in conditions):
            ttl = spec.get("ttlSecondsAfterFinished")
            if ttl is not None and time.time() - self.clock[uid + "/end"] >= ttl:
                self.delete("jobs", ns, name, "Background")
            return
        status.setdefault("startTime", now())
        started = self.clock.setdefault(uid + "/start", time.time())
        pods = self._pods_of(job)
        ignored = [p for p in pods if self._ignored(spec, p)]
        failed = [p for p in pods if p["status"]["phase"] == "Failed" and p not in ignored]
        succeeded = [p for p in pods if p["status"]["phase"] == "Succeeded"]
        active = [p for p in pods if p["status"]["phase"] in ("Pending", "Running")]
        status.update(
            active=len(active),
            failed=len(failed),
            succeeded=len(succeeded),
            ready=sum(p["status"]["phase"] == "Running" for p in active),
        )
        outcome: tuple[str, str, str] | None = None
        deadline = spec.get("activeDeadlineSeconds")
        if succeeded:
            outcome = (
                "Complete",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            )
        elif len(failed) > spec.get("backoffLimit", 6):
            outcome = (
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            )
        elif deadline is not None and time.time() - started > deadline:
            outcome = (
                "Failed",
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            )
        if outcome is not None:
            for pod in active:
                self._pod_failed(pod, "Terminated", "the Job finished")
            first = "SuccessCriteriaMet" if outcome[0] == "Complete" else "FailureTarget"
            status["conditions"] = [
                {
                    "type": t,
                    "status": "True",
                    "reason": outcome[1],
                    "message": outcome[2],
                    "lastProbeTime": now(),
                    "lastTransitionTime": now(),
                }
                for t in (first, outcome[0])
            ]
            status.update(active=0, completionTime=now())
            self.clock[uid + "/end"] = time.time()
            self._set_status("jobs", job, status)
            return
        if not active:
            counted = len(failed)
            due = self.next_pod_at.setdefault(
                f"{uid}/{counted}",
                time.time() + (self.backoff * 2 ** (counted - 1) if counted else 0),
            )
            if time.time() >= due:
                self._new_pod(job)
        self._set_status("jobs", job, status)

    def _ignored(self, spec: JSON, pod: JSON) -> bool:
        if pod["status"]["phase"] != "Failed":
            return False
        held = {c["type"] for c in pod["status"].get("conditions") or [] if c["status"] == "True"}
        for rule in (spec.get("podFailurePolicy") or {}).get("rules") or []:
            if rule.get("action") == "Ignore" and any(
                c.get("type") in held for c in rule.get("onPodConditions") or []
            ):
                return True
        return False

    def _new_pod(self, job: JSON) -> None:
        template = copy.deepcopy(job["spec"]["template"])
        meta = template.get("metadata") or {}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{job['metadata']['name']}-{secrets.token_hex(3)[:5]}",
                "labels": meta.get("labels") or {},
                "annotations": meta.get("annotations") or {},
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "controller": True,
                        "name": job["metadata"]["name"],
                        "uid": job["metadata"]["uid"],
                    }
                ],
            },
            "spec": template["spec"],
        }
        if not pod["metadata"]["annotations"]:
            del pod["metadata"]["annotations"]
        self.create("pods", job["metadata"]["namespace"], pod)

    def evict(self, ns: str, name: str) -> None:
        """As the kubelet ends an evicted pod: its container gets SIGTERM, then SIGKILL after
        `terminationGracePeriodSeconds` (in a thread: the server keeps serving meanwhile, as the
        pod's processes may call it while they stop); the pod fails with `DisruptionTarget`."""
        pod = self.objects.get(("pods", ns, name))
        if pod is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found')
        uid = pod["metadata"]["uid"]
        cid = self.containers.get(uid)
        if cid is None or uid in self.terminating:
            self._pod_failed(pod, "Evicted", "Eviction API: evicting", condition="DisruptionTarget")
            return
        self.terminating.add(uid)
        grace = int(pod["spec"].get("terminationGracePeriodSeconds", 30))

        def terminate() -> None:
            self.kubelet.stop(cid, grace)
            with self.lock:
                self.terminating.discard(uid)
                if self.objects.get(("pods", ns, name)) is pod:
                    self._pod_failed(
                        pod, "Evicted", "Eviction API: evicting", condition="DisruptionTarget"
                    )

        threading.Thread(target=terminate, daemon=True).start()
