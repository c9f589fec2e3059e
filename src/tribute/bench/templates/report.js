(function(){
  var errors=[];
  window.addEventListener('error',function(e){errors.push(String(e.message||e));
    document.body.setAttribute('data-errors',errors.join(' | '));});
  function markImages(){
    var imgs=document.images,bad=0;
    for(var i=0;i<imgs.length;i++){
      var ok=imgs[i].complete&&imgs[i].naturalWidth>0&&imgs[i].naturalHeight>0;
      imgs[i].setAttribute('data-rendered',ok?'ok':'broken'); if(!ok){bad++;}
    }
    document.body.setAttribute('data-images',String(imgs.length));
    document.body.setAttribute('data-broken',String(bad));
    document.body.setAttribute('data-ready','1');
  }
  function sortable(table){
    var heads=table.querySelectorAll('thead th');
    heads.forEach(function(th,col){
      th.addEventListener('click',function(){
        var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
        var dir=th.getAttribute('data-dir')==='asc'?-1:1; th.setAttribute('data-dir',dir>0?'asc':'desc');
        rows.sort(function(a,b){
          var x=a.cells[col],y=b.cells[col];
          var vx=x?x.getAttribute('data-v'):null,vy=y?y.getAttribute('data-v'):null;
          var nx=parseFloat(vx),ny=parseFloat(vy);
          if(isNaN(nx)&&isNaN(ny)){return dir*(x?x.textContent:'').localeCompare(y?y.textContent:'');}
          if(isNaN(nx)){return 1;} if(isNaN(ny)){return -1;}
          return dir*(nx-ny);
        });
        rows.forEach(function(r){body.appendChild(r);});
      });
    });
  }
  document.querySelectorAll('table.sortable').forEach(sortable);
  if(document.readyState==='complete'){markImages();}else{window.addEventListener('load',markImages);}
})();
