//! Pull an image with `oci-client` to a directory: the manifest (the default platform is chosen
//! from an index), the config, and every layer streamed to its own file, layers concurrently.
//!
//! Usage: oci-client-pull REGISTRY/REPO:TAG OUTDIR   (plain HTTP: a loopback registry)
use futures_util::future::try_join_all;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, image, out] = args.as_slice() else {
        return Err("usage: oci-client-pull REGISTRY/REPO:TAG OUTDIR".into());
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let reference: Reference = image.parse()?;
    let client = Client::new(ClientConfig { protocol: ClientProtocol::Http, ..Default::default() });
    let auth = RegistryAuth::Anonymous;
    tokio::fs::create_dir_all(out).await?;
    let (manifest, digest, config) = client.pull_manifest_and_config(&reference, &auth).await?;
    tokio::fs::write(format!("{out}/manifest.json"), manifest.to_string()).await?;
    tokio::fs::write(format!("{out}/config.json"), config).await?;
    let pulls = manifest.layers.iter().map(|layer| {
        let (client, reference) = (&client, &reference);
        async move {
            let path = format!("{out}/{}", layer.digest.replace(':', "_"));
            let file = tokio::fs::File::create(&path).await?;
            client.pull_blob(reference, layer, file).await?;
            Ok::<_, Box<dyn std::error::Error>>(layer.size)
        }
    });
    let bytes: i64 = try_join_all(pulls).await?.into_iter().sum();
    println!("pulled {image} ({digest}): {} layers, {bytes} bytes", manifest.layers.len());
    Ok(())
}
