-- The Lua half of the nginx restic REST backend (bench fixture, see restic-rest.conf.template):
-- method mapping for objects, repository creation, and restic's list formats built from
-- nginx's JSON directory listing (autoindex_format json), read through subrequests.
local ffi = require("ffi")

local M = {}

local V1 = "application/vnd.x.restic.rest.v1"
local V2 = "application/vnd.x.restic.rest.v2"
local TYPES = { "data", "keys", "locks", "snapshots", "index" }
local EEXIST = 17
local MODE_0700 = 448

local data_root = nil

-- Called once in the master process: remembers the data folder and declares mkdir(2).
function M.init(root)
  data_root = root
  ffi.cdef("int mkdir(const char *path, unsigned int mode);")
end

local function deny(allow)
  ngx.header["Allow"] = allow
  return ngx.exit(ngx.HTTP_NOT_ALLOWED)
end

local function empty_ok()
  ngx.status = ngx.HTTP_OK
  ngx.header["Content-Length"] = 0
  ngx.send_headers()
  return ngx.exit(ngx.HTTP_OK)
end

-- Rewrite phase of an object location: restic's POST becomes the PUT that WebDAV handles.
function M.object_method()
  local method = ngx.req.get_method()
  if method == "POST" then
    ngx.req.set_method(ngx.HTTP_PUT)
    return
  end
  if method == "GET" or method == "HEAD" or method == "PUT" or method == "DELETE" then
    return
  end
  return deny("GET, HEAD, POST, PUT, DELETE")
end

local function mkdir(path)
  if ffi.C.mkdir(path, MODE_0700) == 0 then
    return true
  end
  return ffi.errno() == EEXIST
end

-- POST {repo}/?create=true: the repository folder, its five type folders and data/00..ff.
function M.create()
  if ngx.req.get_method() ~= "POST" then
    return deny("POST")
  end
  if ngx.var.arg_create ~= "true" then
    return ngx.exit(ngx.HTTP_BAD_REQUEST)
  end
  local path = data_root
  for segment in string.gmatch(ngx.var.repo, "[^/]+") do
    path = path .. "/" .. segment
    if not mkdir(path) then
      return ngx.exit(ngx.HTTP_INTERNAL_SERVER_ERROR)
    end
  end
  for _, t in ipairs(TYPES) do
    if not mkdir(path .. "/" .. t) then
      return ngx.exit(ngx.HTTP_INTERNAL_SERVER_ERROR)
    end
  end
  for i = 0, 255 do
    if not mkdir(string.format("%s/data/%02x", path, i)) then
      return ngx.exit(ngx.HTTP_INTERNAL_SERVER_ERROR)
    end
  end
  return empty_ok()
end

-- Calls fn(name, kind, size) for each entry of an autoindex JSON body.
local function each_entry(body, fn)
  for entry in string.gmatch(body, "{(.-)}") do
    local name = string.match(entry, '"name":"([^"]*)"')
    local kind = string.match(entry, '"type":"(%a+)"')
    local size = string.match(entry, '"size":(%d+)')
    if name and kind then
      fn(name, kind, size)
    end
  end
end

local function is_object_name(name)
  return #name == 64 and string.find(name, "^[0-9a-f]+$") ~= nil
end

-- GET {repo}/{type}/: v2 ([{"name","size"}]) when asked for exactly, v1 (["name"]) otherwise.
function M.list()
  local method = ngx.req.get_method()
  if method ~= "GET" and method ~= "HEAD" then
    return deny("GET, HEAD")
  end
  local repo, otype = ngx.var.repo, ngx.var.otype
  local v2 = ngx.var.http_accept == V2
  local parts = {}

  local function collect(body)
    each_entry(body, function(name, kind, size)
      if kind == "file" and size and is_object_name(name) then
        if v2 then
          parts[#parts + 1] = '{"name":"' .. name .. '","size":' .. size .. "}"
        else
          parts[#parts + 1] = '"' .. name .. '"'
        end
      end
    end)
  end

  local top = ngx.location.capture("/_autoindex" .. repo .. "/" .. otype .. "/")
  if top.status == ngx.HTTP_NOT_FOUND then
    -- A missing type folder in an existing repository lists as empty; no repository is 404.
    local base = ngx.location.capture("/_autoindex" .. repo .. "/")
    if base.status ~= ngx.HTTP_OK then
      return ngx.exit(ngx.HTTP_NOT_FOUND)
    end
  elseif top.status ~= ngx.HTTP_OK then
    return ngx.exit(ngx.HTTP_INTERNAL_SERVER_ERROR)
  elseif otype == "data" then
    local requests = {}
    each_entry(top.body, function(name, kind)
      if kind == "directory" and string.find(name, "^[0-9a-f][0-9a-f]$") then
        requests[#requests + 1] = { "/_autoindex" .. repo .. "/data/" .. name .. "/" }
      end
    end)
    if #requests > 0 then
      local results = { ngx.location.capture_multi(requests) }
      for _, res in ipairs(results) do
        if res.status == ngx.HTTP_OK then
          collect(res.body)
        elseif res.status ~= ngx.HTTP_NOT_FOUND then
          return ngx.exit(ngx.HTTP_INTERNAL_SERVER_ERROR)
        end
      end
    end
  else
    collect(top.body)
  end

  local body = "[" .. table.concat(parts, ",") .. "]"
  ngx.status = ngx.HTTP_OK
  ngx.header["Content-Type"] = v2 and V2 or V1
  ngx.header["Content-Length"] = #body
  if method == "HEAD" then
    ngx.send_headers()
    return ngx.exit(ngx.HTTP_OK)
  end
  ngx.print(body)
end

return M
