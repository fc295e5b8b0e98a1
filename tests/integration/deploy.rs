//! The deployment files are real: every YAML parses, and the fields the
//! service relies on are there and agree with each other.

use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn load(path: &Path) -> Vec<Yaml> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn k8s(name: &str) -> Yaml {
    let mut docs = load(&deploy_dir().join("k8s").join(name));
    assert_eq!(docs.len(), 1, "{name}: one object per file");
    docs.remove(0)
}

fn s<'a>(y: &'a Yaml, what: &str) -> &'a str {
    y.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {y:?}"))
}

#[test]
fn every_yaml_file_parses() {
    let mut files = vec![
        deploy_dir().join("compose.yaml"),
        deploy_dir().join("otel-collector.yaml"),
    ];
    for entry in std::fs::read_dir(deploy_dir().join("k8s")).unwrap() {
        files.push(entry.unwrap().path());
    }
    for f in &files {
        let docs = load(f);
        assert!(!docs.is_empty(), "{}", f.display());
        if f.parent().unwrap().ends_with("k8s") {
            for d in &docs {
                assert!(
                    d["apiVersion"].as_str().is_some() && d["kind"].as_str().is_some(),
                    "{}",
                    f.display()
                );
                assert_eq!(
                    d["metadata"]["labels"]["app.kubernetes.io/name"]
                        .as_str()
                        .map(|n| n.starts_with("practice-service")),
                    Some(true),
                    "{}",
                    f.display()
                );
            }
        }
    }
}

#[test]
fn the_deployment_is_what_the_service_needs() {
    let d = k8s("deployment.yaml");
    assert_eq!(s(&d["kind"], "kind"), "Deployment");
    let labels = &d["spec"]["selector"]["matchLabels"];
    assert_eq!(&d["spec"]["template"]["metadata"]["labels"], labels);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let c = &pod["containers"][0];
    assert_eq!(c["ports"][0]["containerPort"].as_i64(), Some(8080));
    // Native gRPC probes on the service port; readiness follows the database.
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        assert_eq!(c[probe]["grpc"]["port"].as_i64(), Some(8080), "{probe}");
    }
    assert_eq!(
        s(&c["readinessProbe"]["grpc"]["service"], "readiness service"),
        "practice.v1.PracticeService"
    );
    for kind in ["requests", "limits"] {
        assert!(
            c["resources"][kind]["cpu"].as_str().is_some()
                || c["resources"][kind]["cpu"].as_i64().is_some(),
            "{kind} cpu"
        );
        assert!(
            c["resources"][kind]["memory"].as_str().is_some(),
            "{kind} memory"
        );
    }
    // DATABASE_URL from the Secret; the rest from the ConfigMap.
    let env = c["env"].as_vec().unwrap();
    let db = env
        .iter()
        .find(|e| e["name"].as_str() == Some("DATABASE_URL"))
        .expect("DATABASE_URL");
    assert_eq!(
        s(&db["valueFrom"]["secretKeyRef"]["name"], "secret"),
        "practice-service"
    );
    assert_eq!(
        s(&c["envFrom"][0]["configMapRef"]["name"], "configmap"),
        "practice-service"
    );

    // The kubelet waits longer than the service's own drain.
    let config = k8s("configmap.yaml");
    let grace_ms: i64 = s(&config["data"]["PRACTICE_SHUTDOWN_GRACE_MS"], "grace")
        .parse()
        .unwrap();
    let pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_i64()
        .unwrap_or(0);
    let termination = pod["terminationGracePeriodSeconds"].as_i64().unwrap();
    assert!(
        termination * 1000 > grace_ms + pre_stop * 1000,
        "terminationGracePeriodSeconds {termination} vs grace {grace_ms} ms + preStop {pre_stop} s"
    );
    // Every setting the ConfigMap names is one the service reads.
    let config_text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config.rs"))
            .unwrap();
    for (key, _) in config["data"].as_hash().unwrap() {
        let key = s(key, "key");
        assert!(
            key.starts_with("OTEL_")
                || key == "RUST_LOG"
                || config_text.contains(&format!("\"{key}\"")),
            "{key} is not a setting"
        );
    }
    // The Secret holds what the Deployment asks of it.
    let secret = k8s("secret.example.yaml");
    assert!(
        secret["stringData"]["DATABASE_URL"]
            .as_str()
            .unwrap()
            .starts_with("postgres://")
    );
}

#[test]
fn service_hpa_pdb_and_job_point_at_the_deployment() {
    let d = k8s("deployment.yaml");
    let labels = &d["spec"]["selector"]["matchLabels"];
    let name = s(&d["metadata"]["name"], "name");
    let svc = k8s("service.yaml");
    assert_eq!(&svc["spec"]["selector"], labels);
    assert_eq!(
        s(&svc["spec"]["ports"][0]["targetPort"], "targetPort"),
        s(
            &d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"],
            "port name"
        )
    );
    let hpa = k8s("hpa.yaml");
    assert_eq!(
        s(&hpa["spec"]["scaleTargetRef"]["name"], "hpa target"),
        name
    );
    assert_eq!(
        s(&hpa["spec"]["scaleTargetRef"]["kind"], "hpa kind"),
        "Deployment"
    );
    assert!(hpa["spec"]["minReplicas"].as_i64().unwrap() >= 2);
    let pdb = k8s("pdb.yaml");
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], labels);
    let job = k8s("migrate-job.yaml");
    assert_eq!(s(&job["kind"], "kind"), "Job");
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(s(&c["args"][0], "args"), "migrate");
    assert_eq!(
        c["image"], d["spec"]["template"]["spec"]["containers"][0]["image"],
        "the same image migrates and serves"
    );
}

#[test]
fn compose_runs_postgres_the_service_a_collector_and_jaeger() {
    let compose = &load(&deploy_dir().join("compose.yaml"))[0];
    let services = &compose["services"];
    for name in [
        "postgres",
        "migrate",
        "practice",
        "otel-collector",
        "jaeger",
    ] {
        assert!(!services[name].is_badvalue(), "service {name}");
    }
    let practice = &services["practice"];
    assert!(s(&practice["environment"]["DATABASE_URL"], "db").starts_with("postgres://"));
    assert_eq!(
        s(
            &practice["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"],
            "otlp"
        ),
        "http://otel-collector:4317"
    );
    assert_eq!(s(&services["migrate"]["command"][0], "migrate"), "migrate");
    assert_eq!(
        s(&services["migrate"]["build"]["dockerfile"], "dockerfile"),
        "deploy/Dockerfile"
    );
    let collector = &load(&deploy_dir().join("otel-collector.yaml"))[0];
    assert!(
        collector["service"]["pipelines"]["traces"]["receivers"]
            .as_vec()
            .unwrap()
            .iter()
            .any(|r| r.as_str() == Some("otlp"))
    );
}

#[test]
fn the_dockerfile_builds_small_and_runs_unprivileged() {
    let text = std::fs::read_to_string(deploy_dir().join("Dockerfile")).unwrap();
    assert!(
        text.matches("\nFROM ").count() + usize::from(text.starts_with("FROM ")) >= 2,
        "multi-stage"
    );
    assert!(text.contains("--locked"), "builds with the lock file");
    assert!(
        text.contains("distroless") || text.contains("slim"),
        "a small runtime image"
    );
    let user = text
        .lines()
        .rev()
        .find(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert!(!user.contains("root") && !user.contains(" 0"), "{user}");
    assert!(text.contains("EXPOSE 8080"));
}
