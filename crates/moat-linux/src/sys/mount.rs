//! The new mount API (`open_tree`, `move_mount`, `mount_setattr`, `fsopen`), used so
//! that every mount is made from and onto file descriptors, never re-resolved paths.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::{check, check_int};

/// `MOUNT_ATTR_RDONLY`.
pub const ATTR_RDONLY: u64 = 0x1;
/// `MOUNT_ATTR_NOSUID`.
pub const ATTR_NOSUID: u64 = 0x2;
/// `MOUNT_ATTR_NODEV`.
pub const ATTR_NODEV: u64 = 0x4;
/// `MOUNT_ATTR_NOEXEC`.
pub const ATTR_NOEXEC: u64 = 0x8;

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: callers pass only fresh fds returned by the kernel to this process.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// Clones the mount at `fd` (`recursive`: with everything mounted below it) into a new,
/// detached mount tree, returned as an fd.
pub fn clone_tree(fd: BorrowedFd<'_>, recursive: bool) -> io::Result<OwnedFd> {
    let mut flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: an empty C string with AT_EMPTY_PATH operates on `fd` itself.
    check(unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) })
        .map(owned)
}

/// Clones the mount tree at `path` (resolved from the current root) recursively.
pub fn clone_tree_at(path: &CStr, recursive: bool) -> io::Result<OwnedFd> {
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: `path` is a valid C string.
    check(unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) })
        .map(owned)
}

/// Attaches the detached mount `from` on top of the directory or file `to`.
pub fn attach(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    let flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: empty paths with the *_EMPTY_PATH flags operate on the fds themselves.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            to.as_raw_fd(),
            c"".as_ptr(),
            flags,
        )
    })
    .map(drop)
}

/// Attaches the detached mount `from` at `path` (resolved from the current root).
pub fn attach_at(from: BorrowedFd<'_>, path: &CStr) -> io::Result<()> {
    // SAFETY: valid C strings; the empty source path operates on `from`.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            path.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
    .map(drop)
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Sets mount attributes (`ATTR_*`) on the mount at `fd`, optionally on every mount
/// below it, and makes the mounts private so no mount event crosses to or from the
/// host.
pub fn set_attributes(fd: BorrowedFd<'_>, set: u64, recursive: bool) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: libc::MS_PRIVATE,
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: `attr` is a valid mount_attr of the size passed; empty path + AT_EMPTY_PATH.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// Creates a new, detached filesystem instance (`fsopen` + `fsconfig` + `fsmount`) of
/// type `fstype` with string options and flag options, with mount attributes `attrs`.
pub fn new_filesystem(
    fstype: &CStr,
    options: &[(&CStr, &CStr)],
    flags: &[&CStr],
    attrs: u64,
) -> io::Result<OwnedFd> {
    // SAFETY: valid C string, integer flag.
    let fs = owned(check(unsafe {
        libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), libc::FSOPEN_CLOEXEC)
    })?);
    for (key, value) in options {
        // SAFETY: valid C strings for key and value.
        check(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            )
        })?;
    }
    for key in flags {
        // SAFETY: valid C string key, NULL value as FSCONFIG_SET_FLAG requires.
        check(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_SET_FLAG,
                key.as_ptr(),
                std::ptr::null::<u8>(),
                0,
            )
        })?;
    }
    // SAFETY: NULL key/value as FSCONFIG_CMD_CREATE requires.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<u8>(),
            std::ptr::null::<u8>(),
            0,
        )
    })?;
    // SAFETY: integer arguments only.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            libc::FSMOUNT_CLOEXEC,
            attrs,
        )
    })
    .map(owned)
}

/// Makes every mount in the current namespace private, so that nothing we mount leaks
/// to the host and no host mount event reaches the sandbox.
pub fn make_all_private() -> io::Result<()> {
    // SAFETY: valid C strings; NULL source, type and data are allowed for a
    // propagation change.
    check_int(unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    })
    .map(drop)
}

/// Makes the current directory the root (`pivot_root(".", ".")`) and detaches the old
/// root, which the kernel stacks on top of the new one.
pub fn pivot_to_cwd() -> io::Result<()> {
    // SAFETY: valid C strings.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) })?;
    // SAFETY: valid C string.
    check_int(unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) })?;
    Ok(())
}

/// Builds a C string from a path, refusing interior NUL bytes.
pub fn cstring(path: &std::path::Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}
