//! The gateway's own file storage (SPEC 4): a local folder by default, an S3-compatible
//! bucket when configured, both through `object_store`. Files are written as streams and
//! read back as streams or byte ranges, so that no whole file has to sit in memory.

pub mod derive;

use crate::config::{Config, StorageKind};
use crate::store::FileKind;
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// Bytes buffered before a write turns into a multipart upload.
const WRITE_BUFFER: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage is misconfigured: {0}")]
    Config(String),
    #[error("storage: {0}")]
    Backend(#[from] object_store::Error),
    /// The source stream failed; its own error kind is kept (e.g. `FileTooLarge`).
    #[error("source: {0}")]
    Source(std::io::Error),
}

/// A stream of file bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// Where the gateway keeps its files.
#[derive(Clone, Debug)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
}

/// What [`BlobStore::write_stream`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    pub size: u64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// The first bytes, for recognising the format.
    pub head: Vec<u8>,
}

/// A stored file, or the requested range of it.
pub struct Blob {
    /// The whole file's size.
    pub size: u64,
    /// The bytes `body` carries.
    pub range: Range<u64>,
    pub body: ByteStream,
}

impl BlobStore {
    /// The store the configuration names.
    pub fn open(config: &Config) -> Result<Self, StorageError> {
        let inner: Arc<dyn ObjectStore> = match config.storage {
            StorageKind::Local => {
                let dir = config.storage_dir();
                std::fs::create_dir_all(&dir).map_err(|e| {
                    StorageError::Config(format!("cannot create {}: {e}", dir.display()))
                })?;
                Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&dir)?)
            }
            StorageKind::S3 => Arc::new(s3(config)?),
        };
        Ok(Self { inner })
    }

    /// Writes a stream to `key`, replacing what was there. On error nothing is left behind
    /// (an unfinished multipart upload is aborted).
    pub async fn write_stream(
        &self,
        key: &str,
        mut source: ByteStream,
    ) -> Result<Written, StorageError> {
        let mut writer = BufWriter::with_capacity(self.inner.clone(), path(key)?, WRITE_BUFFER);
        let mut hasher = Sha256::new();
        let mut head = Vec::new();
        let mut size = 0u64;
        let copied: Result<(), StorageError> = async {
            while let Some(chunk) = source.next().await {
                let chunk = chunk.map_err(StorageError::Source)?;
                hasher.update(&chunk);
                if head.len() < 64 {
                    head.extend_from_slice(&chunk[..chunk.len().min(64 - head.len())]);
                }
                size += chunk.len() as u64;
                writer.put(chunk).await?;
            }
            writer.shutdown().await.map_err(|e| {
                StorageError::Backend(object_store::Error::Generic {
                    store: "writer",
                    source: Box::new(e),
                })
            })
        }
        .await;
        if let Err(e) = copied {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(%key, error = %abort, "abandoned upload not cleaned up");
            }
            return Err(e);
        }
        Ok(Written {
            size,
            sha256: hex::encode(hasher.finalize()),
            head,
        })
    }

    /// Writes a small file held in memory.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        self.inner.put(&path(key)?, PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// Reads `range` of a file (all of it when `None`), streamed; `None` when it is absent.
    /// A range past the end is cut to the file.
    pub async fn get(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<Option<Blob>, StorageError> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = match self.inner.get_opts(&path(key)?, options).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let size = result.meta.size;
        let range = result.range.clone();
        let body = result.into_stream().map_err(std::io::Error::other);
        Ok(Some(Blob {
            size,
            range,
            body: Box::pin(body),
        }))
    }

    /// The size of a file, or `None` when it is absent.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        match self.inner.head(&path(key)?).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a whole file of at most `max_bytes` into memory (for cutting derived images).
    pub async fn read(&self, key: &str, max_bytes: u64) -> Result<Option<Bytes>, StorageError> {
        let Some(blob) = self.get(key, None).await? else {
            return Ok(None);
        };
        if blob.size > max_bytes {
            return Err(StorageError::Source(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                format!("{key} is larger than {max_bytes} bytes"),
            )));
        }
        let chunks: Vec<Bytes> = blob
            .body
            .try_collect()
            .await
            .map_err(StorageError::Source)?;
        Ok(Some(chunks.concat().into()))
    }

    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self.inner.delete(&path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Where a task's copied file lives: `tasks/<task id>/image` or `.../video`.
pub fn file_key(mj_id: &str, kind: FileKind) -> String {
    format!("tasks/{mj_id}/{}", kind.as_str())
}

fn path(key: &str) -> Result<Path, StorageError> {
    Path::parse(key).map_err(|e| StorageError::Config(format!("bad key {key}: {e}")))
}

fn s3(config: &Config) -> Result<object_store::aws::AmazonS3, StorageError> {
    let bucket = config
        .s3_bucket
        .as_deref()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| StorageError::Config("storage = \"s3\" needs s3_bucket".to_string()))?;
    let mut builder = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(&config.s3_region)
        .with_virtual_hosted_style_request(!config.s3_path_style);
    if let Some(endpoint) = &config.s3_endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    if let Some(id) = &config.s3_access_key_id {
        builder = builder.with_access_key_id(id);
    }
    if let Some(secret) = &config.s3_secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    Ok(builder.build()?)
}

/// The MIME type of a file, recognised by its first bytes.
pub fn sniff_content_type(head: &[u8]) -> Option<&'static str> {
    if let Ok(format) = image::guess_format(head) {
        return Some(format.to_mime_type());
    }
    match head {
        [_, _, _, _, b'f', b't', b'y', b'p', brand @ ..] if brand.starts_with(b"qt") => {
            Some("video/quicktime")
        }
        [_, _, _, _, b'f', b't', b'y', b'p', ..] => Some("video/mp4"),
        [0x1a, 0x45, 0xdf, 0xa3, ..] => Some("video/webm"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_come_from_the_bytes() {
        assert_eq!(
            sniff_content_type(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Some("image/png")
        );
        assert_eq!(
            sniff_content_type(b"\xff\xd8\xff\xe0\0\x10JFIF"),
            Some("image/jpeg")
        );
        assert_eq!(sniff_content_type(b"GIF89a...."), Some("image/gif"));
        assert_eq!(
            sniff_content_type(b"RIFF\x10\0\0\0WEBPVP8 "),
            Some("image/webp")
        );
        assert_eq!(
            sniff_content_type(b"\0\0\0\x18ftypmp42\0\0\0\0"),
            Some("video/mp4")
        );
        assert_eq!(sniff_content_type(b"<html>"), None);
    }
}
