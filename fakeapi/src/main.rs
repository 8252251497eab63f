//! `fake-apiserver [--listen ADDR] [--kubeconfig PATH] [--control SOCKET]`: runs the fake
//! Kubernetes API server (see the library) until killed; prints its address, writes a
//! kubeconfig pointing at it when asked, and serves the same API on a Unix socket too when
//! asked (for a test outside the server's network namespace).

use std::net::SocketAddr;

fn main() -> std::process::ExitCode {
    let mut listen: SocketAddr = ([127, 0, 0, 1], 0).into();
    let mut kubeconfig = None;
    let mut control: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--listen", Some(v)) => match v.parse() {
                Ok(addr) => listen = addr,
                Err(_) => {
                    eprintln!("error: --listen {v:?}: not an address:port");
                    return std::process::ExitCode::from(2);
                }
            },
            ("--kubeconfig", Some(v)) => kubeconfig = Some(v),
            ("--control", Some(v)) => control = Some(v),
            _ => {
                eprintln!("usage: fake-apiserver [--listen ADDR] [--kubeconfig PATH] [--control SOCKET]");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let api = match fakeapi::FakeApi::start(listen).await {
            Ok(api) => api,
            Err(e) => {
                eprintln!("error: cannot listen on {listen}: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        if let Some(path) = control {
            if let Err(e) = api.serve_unix(path.as_ref()) {
                eprintln!("error: cannot listen on {path}: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
        if let Some(path) = kubeconfig {
            if let Err(e) = std::fs::write(&path, api.kubeconfig()) {
                eprintln!("error: cannot write {path}: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
        println!("listening on http://{}", api.addr);
        std::future::pending::<()>().await;
        std::process::ExitCode::SUCCESS
    })
}
