//! The `metallb.io` custom resources, as kube-rs types, and `lb crds`.
//!
//! Same group, versions, kinds, plurals and field names as MetalLB's CRDs, so that a cluster
//! running MetalLB switches to `lb` with its objects as they are. Each config kind's spec is
//! lbcore's raw type, flattened into a small wrapper that carries the `CustomResource`
//! derive: the CRD schema and the file loader read one definition, and lbcore stays
//! kube-free. BGPPeer is served as `v1beta2` only (MetalLB's `v1beta1` is deprecated).
//!
//! The two status kinds (`ServiceL2Status`, `ServiceBGPStatus`) are written by the speaker to
//! say which node announces a service, and how; they are defined here since they are not
//! configuration.
//!
//! MetalLB's objects may leave `spec` out (an L2Advertisement without one announces every
//! pool): the config kinds read a missing spec as the empty one, and their schemas do not
//! require it.
//!
//! Invariant: every schema printed by [`all`] is structural (Kubernetes' rules; the tests
//! check them), and the spec part accepts every object lbcore's loader reads.

use kube::core::CustomResourceExt;
use kube::CustomResource;
use lbcore::config::raw;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

/// `IPAddressPool.spec`.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "IPAddressPool",
    doc = "Addresses lb may assign to LoadBalancer Services (MetalLB-compatible).",
    plural = "ipaddresspools",
    namespaced,
    printcolumn = r#"{"name":"Auto Assign","type":"boolean","jsonPath":".spec.autoAssign"}"#,
    printcolumn = r#"{"name":"Avoid Buggy IPs","type":"boolean","jsonPath":".spec.avoidBuggyIPs"}"#,
    printcolumn = r#"{"name":"Addresses","type":"string","jsonPath":".spec.addresses"}"#
)]
pub struct IpAddressPoolCrd {
    /// The spec, as lbcore reads it.
    #[serde(flatten)]
    pub spec: raw::IpAddressPoolSpec,
}

/// `L2Advertisement.spec`.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "L2Advertisement",
    doc = "Which pools are announced in L2 mode, from which nodes and interfaces (MetalLB-compatible).",
    plural = "l2advertisements",
    namespaced,
    printcolumn = r#"{"name":"IPAddressPools","type":"string","jsonPath":".spec.ipAddressPools"}"#,
    printcolumn = r#"{"name":"Node Selectors","type":"string","jsonPath":".spec.nodeSelectors","priority":10}"#
)]
pub struct L2AdvertisementCrd {
    /// The spec, as lbcore reads it.
    #[serde(flatten)]
    pub spec: raw::L2AdvertisementSpec,
}

/// `BGPAdvertisement.spec`.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "BGPAdvertisement",
    doc = "Which pools are announced over BGP, how and to which peers (MetalLB-compatible).",
    plural = "bgpadvertisements",
    namespaced,
    printcolumn = r#"{"name":"IPAddressPools","type":"string","jsonPath":".spec.ipAddressPools"}"#,
    printcolumn = r#"{"name":"Peers","type":"string","jsonPath":".spec.peers"}"#,
    printcolumn = r#"{"name":"Node Selectors","type":"string","jsonPath":".spec.nodeSelectors","priority":10}"#
)]
pub struct BgpAdvertisementCrd {
    /// The spec, as lbcore reads it.
    #[serde(flatten)]
    pub spec: raw::BgpAdvertisementSpec,
}

/// `BGPPeer.spec` (`v1beta2`).
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta2",
    kind = "BGPPeer",
    doc = "A BGP router the speakers peer with (MetalLB-compatible).",
    plural = "bgppeers",
    namespaced,
    printcolumn = r#"{"name":"Address","type":"string","jsonPath":".spec.peerAddress"}"#,
    printcolumn = r#"{"name":"ASN","type":"string","jsonPath":".spec.peerASN"}"#,
    printcolumn = r#"{"name":"BFD Profile","type":"string","jsonPath":".spec.bfdProfile"}"#,
    printcolumn = r#"{"name":"Multi Hops","type":"string","jsonPath":".spec.ebgpMultiHop"}"#
)]
pub struct BgpPeerCrd {
    /// The spec, as lbcore reads it.
    #[serde(flatten)]
    pub spec: raw::BgpPeerSpec,
}

/// `Community.spec`.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "Community",
    doc = "Named BGP community values (MetalLB-compatible).",
    plural = "communities",
    namespaced
)]
pub struct CommunityCrd {
    /// The spec, as lbcore reads it.
    #[serde(flatten)]
    pub spec: raw::CommunitySpec,
}

/// `BFDProfile.spec`.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "BFDProfile",
    doc = "BFD session settings (MetalLB-compatible; lb does not run BFD yet).",
    plural = "bfdprofiles",
    namespaced,
    printcolumn = r#"{"name":"Passive Mode","type":"boolean","jsonPath":".spec.passiveMode"}"#,
    printcolumn = r#"{"name":"Transmit Interval","type":"integer","jsonPath":".spec.transmitInterval"}"#,
    printcolumn = r#"{"name":"Receive Interval","type":"integer","jsonPath":".spec.receiveInterval"}"#,
    printcolumn = r#"{"name":"Multiplier","type":"integer","jsonPath":".spec.detectMultiplier"}"#
)]
pub struct BfdProfileCrd {
    /// The spec, as lbcore reads it.
    #[serde(flatten)]
    pub spec: raw::BfdProfileSpec,
}

/// A config kind's spec reads as the empty one when it is absent or null, as MetalLB reads it
/// (serde asks for an absent field through `deserialize_option`, which gives `None`).
macro_rules! spec_may_be_absent {
    ($($wrapper:ident),*) => {$(
        impl<'de> Deserialize<'de> for $wrapper {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($wrapper { spec: Option::deserialize(d)?.unwrap_or_default() })
            }
        }
    )*};
}
spec_may_be_absent!(IpAddressPoolCrd, L2AdvertisementCrd, BgpAdvertisementCrd, BgpPeerCrd, CommunityCrd, BfdProfileCrd);

/// The status kinds' spec is empty, and may be absent too: one object written without it
/// (by hand, or by another tool) must not stop a speaker from reading all the others.
macro_rules! empty_spec_may_be_absent {
    ($($spec:ident),*) => {$(
        impl<'de> Deserialize<'de> for $spec {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let _ = Option::<serde::de::IgnoredAny>::deserialize(d)?;
                Ok($spec {})
            }
        }
    )*};
}
empty_spec_may_be_absent!(ServiceL2StatusCrd, ServiceBgpStatusCrd);

/// `ServiceL2Status.spec` (empty: the object is all status).
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "ServiceL2Status",
    doc = "Which node answers ARP/NDP for a Service (written by the lb speaker).",
    plural = "servicel2statuses",
    namespaced,
    status = "ServiceL2StatusStatus",
    printcolumn = r#"{"name":"Allocated Node","type":"string","jsonPath":".status.node"}"#,
    printcolumn = r#"{"name":"Service Name","type":"string","jsonPath":".status.serviceName"}"#,
    printcolumn = r#"{"name":"Service Namespace","type":"string","jsonPath":".status.serviceNamespace"}"#
)]
pub struct ServiceL2StatusCrd {}

/// Which node answers ARP/NDP for a service, and on which interfaces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceL2StatusStatus {
    /// The announcing node.
    pub node: Option<String>,
    /// The service's name.
    pub service_name: Option<String>,
    /// The service's namespace.
    pub service_namespace: Option<String>,
    /// Interfaces the node answers on.
    pub interfaces: Vec<InterfaceInfo>,
}

/// One interface of a [`ServiceL2StatusStatus`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct InterfaceInfo {
    /// Interface name.
    pub name: String,
}

/// `ServiceBGPStatus.spec` (empty: the object is all status).
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "ServiceBGPStatus",
    doc = "Which node announces a Service over BGP, and to which peers (written by the lb speaker).",
    plural = "servicebgpstatuses",
    namespaced,
    status = "ServiceBgpStatusStatus",
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".status.node"}"#,
    printcolumn = r#"{"name":"Service Name","type":"string","jsonPath":".status.serviceName"}"#,
    printcolumn = r#"{"name":"Service Namespace","type":"string","jsonPath":".status.serviceNamespace"}"#
)]
pub struct ServiceBgpStatusCrd {}

/// Which node announces a service over BGP, and to which peers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceBgpStatusStatus {
    /// The announcing node.
    pub node: Option<String>,
    /// The service's name.
    pub service_name: Option<String>,
    /// The service's namespace.
    pub service_namespace: Option<String>,
    /// BGPPeer names the service's routes are announced to.
    pub peers: Vec<String>,
}

/// Every CRD `lb` serves, in a stable order (config kinds, then status kinds).
pub fn all() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        IPAddressPool::crd(),
        L2Advertisement::crd(),
        BGPAdvertisement::crd(),
        BGPPeer::crd(),
        Community::crd(),
        BFDProfile::crd(),
        ServiceL2Status::crd(),
        ServiceBGPStatus::crd(),
    ];
    // MetalLB stored BGPPeer as v1beta1 in older releases: a cluster that ran one lists it in
    // the CRD's status.storedVersions, and the API server refuses a CRD update that drops a
    // stored version. Listing it, unserved, lets `kubectl apply` replace MetalLB's CRD in
    // place while lb serves v1beta2 only (the fields are the same).
    if let Some(peer) = crds.iter_mut().find(|c| c.spec.names.kind == "BGPPeer") {
        if let Some(mut old) = peer.spec.versions.first().cloned() {
            old.name = "v1beta1".into();
            old.served = false;
            old.storage = false;
            old.deprecated = Some(true);
            peer.spec.versions.insert(0, old);
        }
    }
    for crd in &mut crds {
        let status_kind = crd.spec.names.kind.starts_with("Service");
        for v in &mut crd.spec.versions {
            if let Some(s) = v.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
                tidy(s);
                if !status_kind {
                    // The derive requires `spec`; MetalLB's config kinds do not.
                    s.required = s.required.take().map(|r| r.into_iter().filter(|f| f != "spec").collect());
                    s.required = s.required.take().filter(|r: &Vec<String>| !r.is_empty());
                }
            }
        }
    }
    crds
}

/// Integer and number formats Kubernetes knows (others, such as schemars' `uint32`, only
/// earn a warning from the API server).
const KNOWN_FORMATS: [&str; 4] = ["int32", "int64", "float", "double"];

/// Makes a derived schema what MetalLB's CRDs are: no defaults (the API server would write
/// them into every stored object, and `kubectl diff` would show them against the user's
/// YAML; the meaning of an absent field is lbcore's business), and only formats Kubernetes
/// knows.
fn tidy(s: &mut JSONSchemaProps) {
    s.default = None;
    if s.format.as_deref().is_some_and(|f| !KNOWN_FORMATS.contains(&f)) {
        s.format = None;
    }
    let children = s.properties.iter_mut().flat_map(|p| p.values_mut());
    let items: Vec<&mut JSONSchemaProps> = match &mut s.items {
        Some(JSONSchemaPropsOrArray::Schema(one)) => vec![one.as_mut()],
        Some(JSONSchemaPropsOrArray::Schemas(many)) => many.iter_mut().collect(),
        None => vec![],
    };
    let additional = match &mut s.additional_properties {
        Some(JSONSchemaPropsOrBool::Schema(one)) => Some(one.as_mut()),
        _ => None,
    };
    let junctors = [&mut s.all_of, &mut s.any_of, &mut s.one_of].into_iter().flatten().flat_map(|v| v.iter_mut());
    for child in children.chain(items).chain(additional).chain(junctors).chain(s.not.as_deref_mut()) {
        tidy(child);
    }
}

/// `lb crds`: every CRD as YAML documents.
pub fn print(out: &mut impl std::io::Write) -> crate::Result<()> {
    for crd in all() {
        let yaml =
            serde_saphyr::to_string(&crd).map_err(|e| crate::Error::Invalid(format!("cannot print a CRD: {e}")))?;
        writeln!(out, "---\n{}", yaml.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absent_spec_reads_as_the_empty_one() {
        let bare: L2Advertisement = serde_json::from_str(
            r#"{"apiVersion":"metallb.io/v1beta1","kind":"L2Advertisement","metadata":{"name":"all"}}"#,
        )
        .unwrap();
        assert_eq!(bare.spec.spec, raw::L2AdvertisementSpec::default());
        let null: BGPAdvertisement = serde_json::from_str(r#"{"metadata":{"name":"x"},"spec":null}"#).unwrap();
        assert_eq!(null.spec.spec, raw::BgpAdvertisementSpec::default());
        let full: L2Advertisement =
            serde_json::from_str(r#"{"metadata":{"name":"x"},"spec":{"interfaces":["eth0"]}}"#).unwrap();
        assert_eq!(full.spec.spec.interfaces, ["eth0"]);
        // And it is written back with the fields at spec level, not nested.
        let json = serde_json::to_value(&full).unwrap();
        assert_eq!(json["spec"]["interfaces"][0], "eth0");
        assert_eq!(json["apiVersion"], "metallb.io/v1beta1");
    }
}
