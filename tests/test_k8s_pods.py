"""The one Kubernetes pod renderer (`pipec.backends.common.k8s`) and the one KubernetesSettings:
the resource policy, GPU placement, secret env, deadlines, env escaping, and the settings every
Kubernetes target shares under one name."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipec.backends.airflow.settings import AirflowSettings
from pipec.backends.common import k8s
from pipec.backends.kubeflow import KubeflowSettings
from pipec.backends.settings import KubernetesSettings, SettingsError, load_settings
from pipec.backends.vertex import VertexSettings
from pipec.ir import quantity
from pipec.ir.model import Resources

SETTINGS = KubernetesSettings()


def test_cpu_is_requested_memory_and_disk_are_requested_and_limited() -> None:
    r = Resources(cpu=2.5, memory="3Gi", disk="20Gi")
    assert k8s.resource_requirements(r, SETTINGS) == {
        "requests": {"cpu": "2.5", "memory": "3Gi", "ephemeral-storage": "20Gi"},
        "limits": {"memory": "3Gi", "ephemeral-storage": "20Gi"},
    }
    assert k8s.resource_requirements(Resources(cpu=1), SETTINGS) == {"requests": {"cpu": "1"}}
    assert k8s.pod_needs(Resources(), (), None, SETTINGS) == k8s.PodNeeds()
    assert not k8s.PodNeeds()


def test_gpus_are_limits_on_tolerated_gpu_nodes_of_the_asked_type() -> None:
    pod = k8s.pod_needs(Resources(gpu=2, gpu_type="nvidia-l4"), (), None, SETTINGS)
    assert pod.resources == {"limits": {"nvidia.com/gpu": "2"}}
    assert pod.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod.tolerations == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    # Without a type any GPU node will do; without a taint to tolerate, no toleration.
    untyped = k8s.pod_needs(Resources(gpu=1), (), None, SETTINGS)
    assert untyped.node_selector == {} and untyped.tolerations
    custom = KubernetesSettings(
        gpu_resource="amd.com/gpu", gpu_node_label="pool", gpu_toleration=None
    )
    pod = k8s.pod_needs(Resources(gpu=1, gpu_type="mi300"), (), None, custom)
    assert pod.resources == {"limits": {"amd.com/gpu": "1"}}
    assert pod.node_selector == {"pool": "mi300"} and pod.tolerations == []


def test_secrets_come_from_one_secret_and_deadlines_round_up() -> None:
    pod = k8s.pod_needs(Resources(), ("A", "B"), 0.2, KubernetesSettings(secret_name="team"))
    assert pod.secret_env == [
        {"name": "A", "valueFrom": {"secretKeyRef": {"name": "team", "key": "A"}}},
        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "team", "key": "B"}}},
    ]
    assert pod.active_deadline_seconds == 1
    assert k8s.active_deadline_seconds(600.0) == 600
    assert k8s.active_deadline_seconds(600.001) == 601


@given(st.floats(min_value=1e-6, max_value=1e6))
def test_cpu_quantities_never_give_less_than_asked(cpu: float) -> None:
    text = k8s.cpu_quantity(cpu)
    assert quantity.is_quantity(text)
    assert cpu - 1e-9 <= quantity.amount(text) < cpu + 0.001 + 1e-9


def kubelet_expand(value: str, defined: dict[str, str]) -> str:
    """What the kubelet does to an env value: `$$` -> `$`, `$(NAME)` -> a variable defined
    before it (kept as written when undefined)."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return defined.get(match.group(1), match.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", one, value)


DEFINED = {"HOME": "/root", "A": "x"}
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(st.text(alphabet="$()AHOME_x {}\\\"'"))
def test_env_values_survive_the_kubelet(text: str) -> None:
    assert kubelet_expand(k8s.env_value(text), DEFINED) == text


@given(JSON_VALUES)
def test_json_in_env_has_no_dollar_and_means_the_same(value: object) -> None:
    text = k8s.json_env_text(value)
    assert "$" not in text
    assert json.loads(kubelet_expand(text, DEFINED)) == value


def test_every_kubernetes_target_has_the_same_settings_under_the_same_names() -> None:
    shared = {"secret_name", "gpu_resource", "gpu_node_label", "gpu_toleration"}
    assert shared <= set(KubernetesSettings.model_fields)
    for model in (KubeflowSettings, AirflowSettings):
        assert issubclass(model, KubernetesSettings)
        defaults = {name: model.model_fields[name].default for name in shared}
        assert defaults == {n: KubernetesSettings.model_fields[n].default for n in shared}
    assert not issubclass(VertexSettings, KubernetesSettings)  # no Kubernetes under Vertex
    # Container targets keep their own defaults for where the code is and what runs it.
    assert KubeflowSettings().code_root == "/app" and AirflowSettings().code_root is None
    assert KubeflowSettings().python == AirflowSettings().python == "python3"


def test_an_unknown_setting_names_the_one_meant() -> None:
    with pytest.raises(SettingsError, match=r"\(did you mean secret_name\?\)"):
        load_settings(AirflowSettings, "airflow", {"kubernetes_secret": "s"})
    with pytest.raises(SettingsError, match=r"\(did you mean gpu_toleration\?\)"):
        load_settings(KubeflowSettings, "kubeflow", {"gpu_tolerations": "x"})
    with pytest.raises(SettingsError) as caught:
        load_settings(KubeflowSettings, "kubeflow", {"imag": "i", "zzz": 1})
    assert "unknown settings imag, zzz" in str(caught.value)
    assert "(did you mean image for imag?)" in str(caught.value)
    with pytest.raises(SettingsError) as caught:
        load_settings(VertexSettings, "vertex", {"secret_name": "x"})
    assert "did you mean" not in str(caught.value)
