//! The fake API server as kube-rs sees it: the semantics `lb controller` and `lb speaker`
//! rely on (and that a real API server has), checked with the same client they use.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use serde_json::json;

async fn client() -> (fakeapi::FakeApi, Client) {
    let api = fakeapi::FakeApi::start(([127, 0, 0, 1], 0).into()).await.unwrap();
    let kc = Kubeconfig::from_yaml(&api.kubeconfig()).unwrap();
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.unwrap();
    let client = Client::try_from(cfg).unwrap();
    (api, client)
}

fn svc(name: &str, labels: serde_json::Value) -> Service {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "spec": {"type": "LoadBalancer"}}))
        .unwrap()
}

#[tokio::test]
async fn writes_are_optimistic_apply_creates_and_status_is_a_subresource() {
    let (_api, client) = client().await;
    let svcs: Api<Service> = Api::namespaced(client, "web");
    let created = svcs.create(&PostParams::default(), &svc("a", json!({}))).await.unwrap();
    assert!(created.uid().is_some() && created.creation_timestamp().is_some());
    let dup = svcs.create(&PostParams::default(), &svc("a", json!({}))).await.unwrap_err();
    assert!(matches!(dup, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists"));

    // A status patch changes status only; a main-resource write cannot change status.
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}});
    let s1 = svcs.patch_status("a", &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    assert_ne!(s1.resource_version(), created.resource_version());
    let sneaky = json!({"metadata": {"labels": {"x": "y"}}, "status": {"loadBalancer": {"ingress": []}}});
    let s2 = svcs.patch("a", &PatchParams::default(), &Patch::Merge(&sneaky)).await.unwrap();
    assert_eq!(s2.labels().get("x").map(String::as_str), Some("y"));
    let ingress = s2.status.clone().and_then(|s| s.load_balancer).and_then(|l| l.ingress).unwrap_or_default();
    assert_eq!(ingress.len(), 1, "status kept");

    // A write computed from a stale version is refused; a no-op write changes no version.
    let stale = svcs.replace("a", &PostParams::default(), &s1).await.unwrap_err();
    assert!(matches!(stale, kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict"));
    let again = svcs.patch("a", &PatchParams::default(), &Patch::Merge(&sneaky)).await.unwrap();
    assert_eq!(again.resource_version(), s2.resource_version());

    // Server-side apply creates, then updates.
    let pp = PatchParams::apply("test");
    let applied = svcs.patch("b", &pp, &Patch::Apply(svc("b", json!({"v": "1"})))).await.unwrap();
    assert_eq!(applied.labels()["v"], "1");
    let applied = svcs.patch("b", &pp, &Patch::Apply(svc("b", json!({"v": "2"})))).await.unwrap();
    assert_eq!(applied.labels()["v"], "2");
}

#[tokio::test]
async fn every_write_is_recorded_in_managed_fields_per_manager_operation_and_subresource() {
    let (_api, client) = client().await;
    let svcs: Api<Service> = Api::namespaced(client, "web");
    let pp = PostParams { field_manager: Some("kubectl-client-side-apply".into()), ..Default::default() };
    let created = svcs.create(&pp, &svc("m", json!({"app": "m"}))).await.unwrap();
    let entries = created.managed_fields();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].manager.as_deref(), Some("kubectl-client-side-apply"));
    assert_eq!(entries[0].operation.as_deref(), Some("Update"));
    assert_eq!(entries[0].fields_type.as_deref(), Some("FieldsV1"));
    let fields = serde_json::to_value(&entries[0].fields_v1).unwrap();
    assert_eq!(fields["f:spec"]["f:type"], json!({}), "{fields}");
    assert_eq!(fields["f:metadata"]["f:labels"]["f:app"], json!({}), "{fields}");
    assert!(fields["f:metadata"].get("f:name").is_none(), "server-set fields are not listed: {fields}");

    // A status write by another manager is its own entry, on the status subresource.
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}});
    let pp = PatchParams { field_manager: Some("lb-controller".into()), ..Default::default() };
    let s = svcs.patch_status("m", &pp, &Patch::Merge(&status)).await.unwrap();
    let entries = s.managed_fields();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[1].manager.as_deref(), Some("lb-controller"));
    assert_eq!(entries[1].subresource.as_deref(), Some("status"));
    let fields = serde_json::to_value(&entries[1].fields_v1).unwrap();
    assert!(fields.get("f:spec").is_none() && fields.get("f:status").is_some(), "{fields}");
    // A client cannot overwrite the record: the server keeps its own.
    let mut forged = s.clone();
    forged.metadata.managed_fields = Some(vec![]);
    let replaced = svcs.replace("m", &PostParams::default(), &forged).await.unwrap();
    assert!(replaced.managed_fields().len() >= 2, "{:?}", replaced.managed_fields());
    // Server-side apply is recorded as Apply.
    let applied =
        svcs.patch("m", &PatchParams::apply("helm"), &Patch::Apply(svc("m", json!({"v": "1"})))).await.unwrap();
    assert!(applied
        .managed_fields()
        .iter()
        .any(|e| e.manager.as_deref() == Some("helm") && e.operation.as_deref() == Some("Apply")));
}

#[tokio::test]
async fn lists_page_and_watches_resume_bookmark_filter_and_expire() {
    let (api, client) = client().await;
    let svcs: Api<Service> = Api::namespaced(client, "web");
    for i in 0..1200 {
        svcs.create(&PostParams::default(), &svc(&format!("s{i:04}"), json!({"app": "x"}))).await.unwrap();
    }
    // Pages of 500 with a continue token, one resourceVersion for the whole list.
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(500);
    let first_rv = loop {
        let page = svcs.list(&lp).await.unwrap();
        names.extend(page.items.iter().map(|s| s.name_any()));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break page.metadata.resource_version.unwrap(),
        }
    };
    assert_eq!(names.len(), 1200);
    names.dedup();
    assert_eq!(names.len(), 1200);

    // A watch from that version sees later changes; leaving the selector reads as DELETED;
    // bookmarks come when asked for.
    let wp = WatchParams::default().labels("app=x").timeout(5); // bookmarks are on by default
    let mut events = svcs.watch(&wp, &first_rv).await.unwrap().boxed();
    svcs.patch("s0001", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "y"}}})))
        .await
        .unwrap();
    let mut seen = Vec::new();
    while let Ok(Some(ev)) = events.try_next().await {
        seen.push(match ev {
            WatchEvent::Deleted(s) => format!("DELETED {}", s.name_any()),
            WatchEvent::Bookmark(_) => "BOOKMARK".into(),
            other => format!("{other:?}"),
        });
        if seen.iter().any(|s| s == "BOOKMARK") && seen.iter().any(|s| s.starts_with("DELETED")) {
            break;
        }
    }
    assert_eq!(seen.first().map(String::as_str), Some("DELETED s0001"), "{seen:?}");
    assert!(seen.iter().any(|s| s == "BOOKMARK"), "{seen:?}");

    // Once the history is gone, a watch from an old version gets 410 Gone, which kube-rs'
    // watcher answers by listing again.
    api.shared.with(fakeapi::store::Store::compact);
    let mut gone = svcs.watch(&WatchParams::default(), &first_rv).await.unwrap().boxed();
    match gone.next().await {
        Some(Ok(WatchEvent::Error(e))) => assert_eq!(e.code, 410),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
}
