//! Registers this process as a server of a service until Ctrl-C.
//!
//! ```sh
//! cargo run -p ndsr --example register -- 127.0.0.1:2181 /services/web 10.0.0.1:80
//! ```

use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(servers), Some(service), Some(address)) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: register SERVERS SERVICE_PATH HOST:PORT");
        std::process::exit(2);
    };
    let registry = ndsr::Registry::builder(&servers).build().await?;
    let node = format!("{service}/{address}");
    registry.set_node(&node, json!({"version": env!("CARGO_PKG_VERSION")})).await?;
    println!("registered {node}; Ctrl-C to withdraw");
    tokio::signal::ctrl_c().await?;
    registry.close().await; // the node vanishes now, not after the session timeout
    println!("withdrawn");
    Ok(())
}
