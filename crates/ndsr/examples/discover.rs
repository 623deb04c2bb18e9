//! Prints the servers of a service now and on every change, until Ctrl-C.
//!
//! ```sh
//! cargo run -p ndsr --example discover -- 127.0.0.1:2181 /services/web
//! ```

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(servers), Some(service)) = (args.next(), args.next()) else {
        eprintln!("usage: discover SERVERS SERVICE_PATH");
        std::process::exit(2);
    };
    let registry = ndsr::Registry::builder(&servers).lazy(true).build().await?;
    let mut states = registry.state_changes();
    let mut servers_of = registry.subscribe(&service)?;
    loop {
        tokio::select! {
            snapshot = servers_of.next() => match snapshot {
                Some(s) => println!("{service}: {:?}", s.children),
                None => break,
            },
            changed = states.changed() => {
                if changed.is_err() { break; }
                eprintln!("connection: {:?}", *states.borrow());
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    registry.close().await;
    Ok(())
}
