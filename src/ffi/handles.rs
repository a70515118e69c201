//! Opaque handles. Each starts with a tag so that a pointer which is not one
//! of ours, or was freed (the tag is wiped on free), is refused instead of
//! being used. This catches misuse while the memory is still mapped; it is a
//! safety net, not a guarantee.

use super::{Failure, HisdfStatus};
use crate::mesh::TriangleMesh;
use crate::model::TrainedModel;

macro_rules! handle {
    ($name:ident, $inner:ty, $tag:expr, $what:literal) => {
        /// Opaque handle; create and free it only through the C API.
        pub struct $name {
            tag: u64,
            inner: $inner,
        }

        impl $name {
            const TAG: u64 = $tag;

            pub(super) fn new(inner: $inner) -> *mut $name {
                Box::into_raw(Box::new($name {
                    tag: Self::TAG,
                    inner,
                }))
            }

            pub(super) fn get<'a>(ptr: *const $name) -> Result<&'a $inner, Failure> {
                // SAFETY: the caller promised a pointer from `new`; the tag
                // check refuses the common misuses (freed, foreign).
                match unsafe { ptr.as_ref() } {
                    None => Err(Failure::null($what)),
                    Some(h) if h.tag == Self::TAG => Ok(&h.inner),
                    Some(_) => Err(Failure(
                        HisdfStatus::InvalidHandle,
                        concat!($what, " is not a live handle (freed or foreign pointer)").into(),
                    )),
                }
            }

            pub(super) fn free(ptr: *mut $name) {
                if let Some(h) = unsafe { ptr.as_mut() } {
                    if h.tag == Self::TAG {
                        h.tag = 0;
                        drop(unsafe { Box::from_raw(ptr) });
                    }
                }
            }
        }
    };
}

handle!(HisdfMesh, TriangleMesh, 0x6869_7364_666d_7368, "mesh");
handle!(HisdfModel, TrainedModel, 0x6869_7364_666d_646c, "model");
